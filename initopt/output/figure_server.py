"""What the figure workers' fork server loads before it forks them (see :mod:`initopt.output.figures`):
imported in that server only, never by a command's own process."""

from initopt.output.figures import settle

settle()
