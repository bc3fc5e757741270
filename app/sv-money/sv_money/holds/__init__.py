"""Holds (two-phase transfers): reserve funds now, capture all or part later, or void."""
