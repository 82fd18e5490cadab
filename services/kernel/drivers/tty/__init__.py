"""The tty layer: termios, the N_TTY line discipline, controlling terminals
and job control, and pseudo-terminals (docs/architecture.md, "Terminals")."""
