# keyd-backup: owned by the backup work
