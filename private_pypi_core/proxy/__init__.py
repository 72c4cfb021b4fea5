"""Proxy repositories: a pull-through cache of an upstream simple index, stored in any backend.

``settings`` reads the ``[<repository>.proxy]`` table, ``upstream`` speaks to the upstream
index, ``fetch`` brings a file into the cache as it is sent, ``repository`` puts them together.
"""
