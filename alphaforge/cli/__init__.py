"""The command line (``alphaforge …``): the parser and error reporting (:mod:`.main`), one module per
sub-command (:mod:`.commands`), rendering and plots. It calls the ``runs`` layer and its read-only queries."""
