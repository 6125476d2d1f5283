from modemd.launch import main

main()
