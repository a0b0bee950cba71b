"""`python -m model_zoo build|info|verify`: the zoo CLI without the rest of gapbench."""

from model_zoo.cli import app

if __name__ == "__main__":
    app(prog_name="python -m model_zoo")
