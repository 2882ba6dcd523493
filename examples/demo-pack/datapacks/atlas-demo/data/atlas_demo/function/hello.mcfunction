say Hello from the Atlas demo datapack
