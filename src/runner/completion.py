"""``runx --completion bash|zsh|fish``: a completion script on stdout.

    bash:  eval "$(runx --completion bash)"      (in ~/.bashrc)
    zsh:   eval "$(runx --completion zsh)"       (in ~/.zshrc, after compinit)
    fish:  runx --completion fish > ~/.config/fish/completions/runx.fish

Completes runx's options and their values (--tree dir|fuse, files for
--with-requirements/--env-file, directories for --find-links), the
subcommands (sync, kernel, editor, gc, ls, cache), and then the command: a command name or a
script file, and after it whatever the shell completes for that command.
"""

from ..errors import UsageError
from .options import OPTIONS as _TABLE

SHELLS = ("bash", "zsh", "fish")

# (names, value kind or None, help), from the one option table. Kinds: file,
# dir, python, tree, shell, text (no completion), or a tuple of choices.
OPTIONS = [(opt.names, None if opt.metavar is None else (opt.kind or "text"), opt.help)
           for opt in _TABLE]
REPEATABLE = {n for opt in _TABLE if opt.repeat for n in opt.names} | {"-v", "--verbose"}
SUBCOMMANDS = [("sync", "prepare an environment, run nothing"),
               ("kernel", "install, list or remove Jupyter kernels that start through runx"),
               ("editor", "print a stable interpreter path for an editor"),
               ("gc", "remove environments left by killed runs"),
               ("ls", "list live environments"),
               ("cache", "show, prune or clean the layer cache")]
SUB_ARGS = {"gc": "--dry-run --kept", "ls": "", "cache": "dir prune clean"}
CACHE_ARGS = {"prune": "--older-than --dry-run", "clean": "--force", "dir": ""}
TREE_VALUES = ("dir", "fuse")


def script(shell: str) -> str:
    if shell == "bash":
        return _bash()
    if shell == "zsh":
        return _zsh()
    if shell == "fish":
        return _fish()
    raise UsageError(f"--completion {shell}: unknown shell", "expected bash, zsh or fish")


def _names(kind_filter) -> list:
    return [n for names, kind, _ in OPTIONS if kind_filter(kind) for n in names]


def _bash() -> str:
    all_opts = " ".join(_names(lambda k: True))
    valued = "|".join(_names(lambda k: k is not None))
    files = "|".join(_names(lambda k: k == "file"))
    dirs = "|".join(_names(lambda k: k == "dir"))
    pythons = "|".join(_names(lambda k: k == "python"))
    subs = " ".join(s for s, _ in SUBCOMMANDS)
    texts = "|".join(_names(lambda k: k == "text"))
    choices = "\n".join(
        f"        {'|'.join(names)}) COMPREPLY=($(compgen -W \"{' '.join(kind)}\" -- \"$cur\"));"
        " return;;" for names, kind, _ in OPTIONS if isinstance(kind, tuple))
    cache_cases = "\n".join(f"                    {k}) words=\"{v}\";;" for k, v in CACHE_ARGS.items())
    return f"""\
# bash completion for runx (runx --completion bash)
_runx() {{
    local cur prev words i n
    cur="${{COMP_WORDS[COMP_CWORD]}}"
    prev="${{COMP_WORDS[COMP_CWORD-1]}}"
    # --opt=value: complete the value
    if [[ "$cur" == --*=* ]]; then
        prev="${{cur%%=*}}"; cur="${{cur#*=}}"
    elif [[ "$prev" == "=" && $COMP_CWORD -ge 2 ]]; then
        prev="${{COMP_WORDS[COMP_CWORD-2]}}"
    fi
    # Find where the command (first positional) starts, before the cursor.
    i=1
    while [[ $i -lt $COMP_CWORD ]]; do
        case "${{COMP_WORDS[i]}}" in
            --) i=$((i+1)); break;;
            -m|--module) i=$((i+2)); [[ $i -le $COMP_CWORD ]] && {{ COMPREPLY=($(compgen -f -- "$cur")); return; }};;
            {valued}) if [[ "${{COMP_WORDS[i+1]}}" == "=" ]]; then i=$((i+3)); else i=$((i+2)); fi;;
            -*) i=$((i+1));;
            *) break;;
        esac
    done
    if [[ $i -lt $COMP_CWORD ]]; then
        case "${{COMP_WORDS[i]}}" in
            gc) COMPREPLY=($(compgen -W "{SUB_ARGS['gc']}" -- "$cur")); return;;
            ls) COMPREPLY=(); return;;
            cache)
                if [[ $((i+1)) -eq $COMP_CWORD ]]; then
                    COMPREPLY=($(compgen -W "{SUB_ARGS['cache']}" -- "$cur"))
                else
                    words=""
                    case "${{COMP_WORDS[i+1]}}" in
{cache_cases}
                    esac
                    COMPREPLY=($(compgen -W "$words" -- "$cur"))
                fi
                return;;
        esac
        # The command's own arguments: whatever the shell completes for it.
        if declare -F _command_offset >/dev/null 2>&1; then
            _command_offset $i
        else
            COMPREPLY=($(compgen -f -- "$cur"))
        fi
        return
    fi
    case "$prev" in
        --tree) COMPREPLY=($(compgen -W "{' '.join(TREE_VALUES)}" -- "$cur")); return;;
        --completion) COMPREPLY=($(compgen -W "{' '.join(SHELLS)}" -- "$cur")); return;;
{choices}
        {files}) COMPREPLY=($(compgen -f -- "$cur")); return;;
        {dirs}) COMPREPLY=($(compgen -d -- "$cur")); return;;
        {pythons}) COMPREPLY=($(compgen -c -- "$cur") $(compgen -f -- "$cur")); return;;
        {texts}) COMPREPLY=(); return;;
    esac
    if [[ "$cur" == -* ]]; then
        COMPREPLY=($(compgen -W "{all_opts}" -- "$cur"))
        return
    fi
    # The command: a subcommand, a command name, or a script file.
    COMPREPLY=($(compgen -W "{subs}" -- "$cur") $(compgen -c -- "$cur") $(compgen -f -- "$cur"))
}}
complete -o filenames -o bashdefault -F _runx runx
"""


def _zsh_escape(s: str) -> str:
    return (s.replace("'", "'\\''").replace("[", "\\[").replace("]", "\\]")
            .replace(":", "\\:"))


def _zsh() -> str:
    specs = []
    action = {"file": ":file:_files", "dir": ":directory:_files -/",
              "python": ":python:_command_names -e", "tree": f":tree:({' '.join(TREE_VALUES)})",
              "shell": f":shell:({' '.join(SHELLS)})", "text": ":value: "}
    for names, kind, help_ in OPTIONS:
        h = _zsh_escape(help_)
        if isinstance(kind, tuple):
            body = f":value:({' '.join(kind)})"
        else:
            body = action[kind] if kind else ""
        if "-m" in names:                # like python -m: the rest is the module's
            specs += [f"'(-){n}[{h}]:module: '" for n in names]
        elif names[0] in REPEATABLE:
            specs += [f"'*{n}[{h}]{body}'" for n in names]
        elif len(names) > 1:
            specs.append(f"'({' '.join(names)})'{{{','.join(names)}}}'[{h}]{body}'")
        else:
            specs.append(f"'{names[0]}[{h}]{body}'")
    subs = " ".join(f"'{s}:{_zsh_escape(d)}'" for s, d in SUBCOMMANDS)
    lines = " \\\n        ".join(specs)
    return f"""\
#compdef runx
# zsh completion for runx (runx --completion zsh)
_runx_subcommands() {{
    local -a subs
    subs=({subs})
    _describe -t subcommands 'runx command' subs
}}

_runx() {{
    local curcontext="$curcontext" state line ret=1
    typeset -A opt_args
    _arguments -C -S \\
        {lines} \\
        '1: :->command' \\
        '*:: :->args' && ret=0
    case $state in
        command)
            _alternative 'subcommands:runx command:_runx_subcommands' \\
                'commands:command:_command_names -e' 'files:script:_files' && ret=0;;
        args)
            case $line[1] in
                gc) _values -w 'option' --dry-run --kept && ret=0;;
                ls) ret=0;;
                cache) _values 'cache command' dir prune clean && ret=0;;
                *) _normal && ret=0;;
            esac;;
    esac
    return ret
}}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    _runx "$@"
else
    compdef _runx runx
fi
"""


def _fish() -> str:
    out = ["# fish completion for runx (runx --completion fish)",
           "complete -c runx -f",
           "function __runx_no_command",
           "    set -l tokens (commandline -opc)",
           "    set -e tokens[1]",
           f"    set -l valued {' '.join(_names(lambda k: k is not None))}",
           "    set -l skip 0",
           "    for t in $tokens",
           "        if test $skip -eq 1",
           "            set skip 0",
           "            continue",
           "        end",
           "        if test \"$t\" = --",
           "            return 1",
           "        end",
           "        if contains -- $t $valued",
           "            set skip 1",
           "            continue",
           "        end",
           "        switch $t",
           "            case '-*'",
           "                continue",
           "        end",
           "        return 1",
           "    end",
           "    return 0",
           "end"]
    fish_arg = {"file": "-r -F", "dir": "-r -a '(__fish_complete_directories)'",
                "python": "-r -a '(__fish_complete_command)' -F",
                "tree": f"-r -f -a '{' '.join(TREE_VALUES)}'",
                "shell": f"-r -f -a '{' '.join(SHELLS)}'", "text": "-r -f"}
    for names, kind, help_ in OPTIONS:
        parts = []
        for n in names:
            parts.append(f"-l {n[2:]}" if n.startswith("--") else f"-s {n[1:]}")
        if isinstance(kind, tuple):
            arg = f"-r -f -a '{' '.join(kind)}'"
        else:
            arg = fish_arg[kind] if kind else ""
        desc = help_.replace("'", "\\'")
        out.append(f"complete -c runx -n __runx_no_command {' '.join(parts)} {arg} -d '{desc}'"
                   .replace("  ", " "))
    for s, d in SUBCOMMANDS:
        out.append(f"complete -c runx -n __runx_no_command -a {s} -d '{d}'")
    out.append("complete -c runx -n __runx_no_command -a '(__fish_complete_command)' -F")
    out.append(f"complete -c runx -n '__fish_seen_subcommand_from gc' -a '{SUB_ARGS['gc']}'")
    out.append(f"complete -c runx -n '__fish_seen_subcommand_from cache' -a '{SUB_ARGS['cache']}'")
    return "\n".join(out) + "\n"
