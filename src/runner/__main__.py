from runx_env.runner.cli import main

main()
