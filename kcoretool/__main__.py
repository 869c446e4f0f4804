from kcoretool.cli import main

main(prog_name="kcoretool")
