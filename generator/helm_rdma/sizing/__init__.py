"""Shapes and models: the presets, the model catalog and Hub models, and the plan (nodes, TP x PP, memory, time to
first token) they give.
"""
