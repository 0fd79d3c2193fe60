"""Every `abvoc` subcommand, grouped by the part of abvoc it drives."""

from app.commands.capacity import CAPACITY_COMMANDS
from app.commands.experiments import EXPERIMENT_COMMANDS
from app.commands.models import MODEL_COMMANDS
from app.commands.relabel import RELABEL_COMMANDS
from app.commands.system import SYSTEM_COMMANDS

ALL_COMMANDS = [*SYSTEM_COMMANDS, *MODEL_COMMANDS, *EXPERIMENT_COMMANDS, *CAPACITY_COMMANDS,
                *RELABEL_COMMANDS]
