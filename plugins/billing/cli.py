import click
@click.group("billing")
def billing_group():
    """Billing."""
