"""The one machine interface's bookkeeping, shared by the CLI's error handler and the commands without
importing either: the format a command was asked for, and whether it printed its JSON document yet."""

FORMAT_META = "exchange.format"  # click context meta: the --format asked for
JSON_EMITTED_META = "exchange.json-emitted"  # the command printed its one JSON document
