"""The thin command line: parse, call one library function, render."""
