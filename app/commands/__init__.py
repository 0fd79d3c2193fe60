"""Every `abvoc` subcommand, grouped by the part of abvoc it drives."""

from app.commands.capacity import CAPACITY_COMMANDS
from app.commands.dashboard import DASHBOARD_COMMANDS
from app.commands.demo import DEMO_COMMANDS
from app.commands.experiments import EXPERIMENT_COMMANDS
from app.commands.metrics import METRIC_COMMANDS
from app.commands.models import MODEL_COMMANDS
from app.commands.pages import PAGES_COMMANDS
from app.commands.relabel import RELABEL_COMMANDS
from app.commands.system import SYSTEM_COMMANDS
from app.commands.workloads import WORKLOAD_COMMANDS

ALL_COMMANDS = [*SYSTEM_COMMANDS, *MODEL_COMMANDS, *EXPERIMENT_COMMANDS, *METRIC_COMMANDS,
                *CAPACITY_COMMANDS, *WORKLOAD_COMMANDS, *DASHBOARD_COMMANDS,
                *DEMO_COMMANDS, *PAGES_COMMANDS, *RELABEL_COMMANDS]
