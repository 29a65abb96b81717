// Placeholder until the allotd main lands.
int main() { return 1; }
