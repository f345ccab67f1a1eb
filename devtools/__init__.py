"""Helpers for developing pelican-s3-publish: a local S3 server, the demo and the benchmark."""
