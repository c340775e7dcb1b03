"""The output: the one module that writes files (io), the one that imports matplotlib (plots), the
figure workers, the printed tables, and the report of many runs."""
