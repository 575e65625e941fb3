"""Reading a group's logs for why it hangs or fails (the diagnose command): where logs come from, the lines known, what
they mean.
"""
