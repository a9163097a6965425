"""``pscs compliance check``: does the installation honour S1-S3 right now?"""
