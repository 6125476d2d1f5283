from modemd.cli import main

main()
