"""Sub-commands of the ``microstream`` command, one module each."""
