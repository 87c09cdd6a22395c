"""`exchange add-gear`: a contributor's Flywheel gear manifest into gears/<org>/<name>.json."""

from ..specs import SpecKind
from .adding import make_add_command

command = make_add_command(SpecKind.GEAR)
