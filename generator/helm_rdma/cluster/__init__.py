"""A release on a live cluster, read and written with the official kubernetes client: needs, checks, groups, rollout,
test runs.
"""
