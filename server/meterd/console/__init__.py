"""The ops console: a web dashboard (`meter console`), people's CLI commands and reports.

Everything here is a client of Meter's public gRPC API (through the `meter` client package), so it
works against any deployment; nothing here touches the database."""
