"""A stand-in training script: the application files go in the last layer."""
import hello_mlenv

if __name__ == "__main__":
    hello_mlenv.main()
