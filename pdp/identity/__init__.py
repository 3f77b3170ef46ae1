"""Authentication: credentials in, a verified Subject out (or an AuthenticationError).

The only package that imports jwt. One module per credential kind.
"""
