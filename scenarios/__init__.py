"""Scenarios: the YAML model of a bank, its activity and a load test; the bundled scenarios."""

from scenarios.errors import Problem, ScenarioError
from scenarios.loader import LoadedScenario, bundled_names, dump_yaml, load, validate_files
from scenarios.model import Scenario

__all__ = [
    "LoadedScenario",
    "Problem",
    "Scenario",
    "ScenarioError",
    "bundled_names",
    "dump_yaml",
    "load",
    "validate_files",
]
