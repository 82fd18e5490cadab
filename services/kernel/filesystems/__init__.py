"""Filesystems of the guest kernel."""
