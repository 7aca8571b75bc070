"""Pinned external versions and where the installed toolchain lives."""
