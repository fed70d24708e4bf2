"""Operations on a repository (DESIGN §10): set up, check, repair, move, back up, re-key.

Each operation is a module of this package, a Python function of the seed's API and a command
of the command line (``escale_core/cli``). They share :mod:`.maintenance`: the section is not
being synced by a running daemon (unless paused), the local section lock is held, and the
relay's maintenance lock is taken, so that two operations never run on one repository at once,
and an interrupted one can be run again with nothing lost.

Layers: ``cli`` → ``ops`` → engine → relay/crypto/state; nothing here imports the command line.
"""

from .maintenance import MAINTENANCE_LOCK, Maintenance, maintenance, refuse_if_daemon_syncs

__all__ = ["MAINTENANCE_LOCK", "Maintenance", "maintenance", "refuse_if_daemon_syncs"]
