"""Writing a chart: templates plus the generated values.yaml, values.schema.json (and the same schema without
`required`, for override files), Chart.yaml and README; packaging, images and registries.
"""
