"""The `lab` command line and the notebook runner of smarketing-lab."""
