"""Project directory, configuration, lock file and safe file writing: the resumable core."""
