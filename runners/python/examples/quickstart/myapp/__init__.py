"""Example application for the rrqkit Python runner."""
