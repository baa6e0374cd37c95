"""CLI sub-commands: each module registers its parser and implements its command."""
