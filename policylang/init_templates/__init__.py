"""Templates for ``policylang init``: the files of a new policy project.

Each ``*.tmpl`` file is copied with ``@@name@@`` replaced by the policy name and
``@@version@@`` by the policylang version; :mod:`policylang.cli.init` maps them to
their places in the project. They are not named ``.policy`` or ``.yaml`` so that no
tool mistakes them for real policies or configuration.
"""
