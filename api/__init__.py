"""The HTTP edge: parse, call one domain service, answer a schema."""
