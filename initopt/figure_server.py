"""What the figure workers' fork server loads before it forks them (see :mod:`initopt.figures`):
imported in that server only, never by a command's own process."""

from initopt.figures import settle

settle()
