"""Every `abvoc` subcommand, grouped by the part of abvoc it drives."""

from app.commands.capacity import CAPACITY_COMMANDS
from app.commands.models import MODEL_COMMANDS
from app.commands.system import SYSTEM_COMMANDS

ALL_COMMANDS = [*SYSTEM_COMMANDS, *CAPACITY_COMMANDS, *MODEL_COMMANDS]
