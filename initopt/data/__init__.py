"""The data: where the files come from, how they are read and checked, the split and batch order."""
