"""The ``loyalty`` command: every operator action. It composes the edges (api, jobs) and the domain."""
