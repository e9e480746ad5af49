"""``loyalty``: run the service, the jobs and every operator action."""

from __future__ import annotations

import click

from cli import apikeys, db, demo, export, jobs, points, privacy, scores, serve, staff, wechat


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--log-level", default=None, help="debug, info, warning (default from LOYALTY_LOG_LEVEL, info).")
@click.pass_context
def main(ctx: click.Context, log_level: str | None) -> None:
    """Membership and loyalty backend.

    Without DATABASE_URL every command uses the embedded PostgreSQL kept under .var/ in the project,
    starting it if needed. Start with `loyalty serve`; see `loyalty COMMAND --help` for each action.
    """
    from cli.common import setup_logging

    setup_logging(log_level)


for module in (serve, db, jobs, apikeys, staff, points, demo, scores, wechat, export, privacy):
    module.register(main)

if __name__ == "__main__":
    main()
