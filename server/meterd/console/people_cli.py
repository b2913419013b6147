"""People's commands: placeholder until the tables land."""


def add_commands(sub, meter_arguments) -> None:
    return None
