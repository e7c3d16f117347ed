from sslm_ci.cli import main

main()
