"""Values, as helm builds them: the user's -f files and --set family merged over preset and model defaults, then
checked against the values schema.
"""
