"""Checks of resolved values before anything is applied: the chart's rule table, the NCCL look-alikes and doctor's own
doubts, each a Finding with its fix.
"""
