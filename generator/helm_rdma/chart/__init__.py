"""Writing a chart: templates plus the generated values.yaml, values.schema.json, Chart.yaml and README; packaging,
images and registries.
"""
