"""One module per command (cli.py imports only the one that runs). A command module imports at its top what
defining its options needs; what the command does is imported in its function, when it runs, so that
`exchange COMMAND --help` stays cheap (tests/test_startup_imports.py)."""
