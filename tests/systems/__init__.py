"""Shared reference systems for the tests (as in dynamiqs' tests/systems): models with their closed-form
answers written out from docs/physics-notes.md and the paper, never computed with package code.

Import as ``from systems.paper import FIG3`` (pytest puts ``tests/`` on the path).
"""
