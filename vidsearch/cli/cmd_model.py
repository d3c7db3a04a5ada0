import click
from .base import cli
@cli.group("model")
def model_group():
    """Install, inspect and build model directories."""
