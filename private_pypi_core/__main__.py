from private_pypi_core.cli import main

main()
