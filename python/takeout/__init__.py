"""takeout: take one function out of a notebook and ship it as a service."""
