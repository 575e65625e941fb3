"""Checks of resolved values before anything is applied: doctor's own doubts, the NCCL look-alikes and the serving
checks, each a Finding with its fix; the chart's facts Python mirrors; and the reading of the chart's own verdict
(its rules live in charts/vllm-rdma/templates/_rules.tpl).
"""
