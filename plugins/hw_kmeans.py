"""Placeholder module: its plugin is being written (see the open issues); it registers nothing yet."""
